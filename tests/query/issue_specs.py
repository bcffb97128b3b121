"""The two specs of issue 3, verbatim: they must parse and run exactly as written."""

GI_BLEED = """\
study: gi-bleed
cohort:
  entry:
    condition: {concepts: [192671], descendants: true}
    occurrence: all
analyses:
  - {name: entries, count: entries}
  - {name: persons, count: persons, by: [sex]}
"""

CELECOXIB = """\
study: celecoxib-new-users
cohort:
  entry:
    drug: {concepts: [1118084], descendants: true}
    occurrence: first
  observation: {prior_days: 365}
  demographics: {age: {min: 18}}
  criteria:
    - exclude:
        condition: {concepts: [192671], descendants: true}
        window: {start: null, end: -1}
analyses:
  - {name: size, count: persons}
  - {name: by_sex_age, count: persons, by: [sex, {age_band: 10}]}
  - name: gi_bleed_1y
    outcome:
      condition: {concepts: [192671], descendants: true}
      window: {start: 1, end: 365}
    by: [sex]
"""
