-- the cohort, once per run
CACHE TABLE study_cohort AS
WITH entry_events AS (
  SELECT
    t.person_id AS person_id,
    t.condition_start_date AS start_date,
    COALESCE(t.condition_end_date, t.condition_start_date) AS end_date,
    0 AS domain_rank,
    t.condition_occurrence_id AS event_id,
    t.condition_concept_id AS concept_id,
    t.visit_occurrence_id AS visit_id,
    CAST(NULL AS DOUBLE) AS value_num
  FROM condition_occurrence AS t
  WHERE
    NOT t.person_id IS NULL
    AND NOT t.condition_start_date IS NULL
    AND (
      (
        t.condition_concept_id IN (
          SELECT
            ca.descendant_concept_id
          FROM concept_ancestor AS ca
          WHERE
            ca.ancestor_concept_id IN (192671)
          UNION ALL
          SELECT
            192671
        )
      )
    )
), entries AS (
  SELECT
    *,
    ROW_NUMBER() OVER (
      PARTITION BY person_id
      ORDER BY start_date ASC NULLS LAST, domain_rank ASC NULLS LAST, event_id ASC NULLS LAST, concept_id ASC NULLS LAST
    ) AS entry_no
  FROM entry_events
), candidates AS (
  SELECT
    e.person_id AS person_id,
    e.entry_no AS entry_no,
    e.start_date AS index_date,
    e.domain_rank AS domain_rank,
    e.event_id AS event_id,
    e.concept_id AS concept_id,
    e.visit_id AS visit_id,
    e.end_date AS event_end,
    p.gender_concept_id AS gender_concept_id,
    p.year_of_birth AS year_of_birth,
    YEAR(e.start_date) - p.year_of_birth AS age
  FROM entries AS e
  JOIN person AS p
    ON p.person_id = e.person_id
), cohort_entries AS (
  SELECT
    c.*
  FROM candidates AS c
)
SELECT
  person_id,
  entry_no,
  index_date,
  gender_concept_id,
  age
FROM cohort_entries;

-- analysis 1: count
WITH dims AS (
  SELECT
    f.*
  FROM study_cohort AS f
)
SELECT
  COUNT(*) AS `entries`
FROM dims;

-- analysis 2: count
WITH dims AS (
  SELECT
    f.*,
    f.gender_concept_id AS d_0
  FROM study_cohort AS f
)
SELECT
  d_0 AS `sex`,
  COUNT(DISTINCT person_id) AS `persons`
FROM dims
GROUP BY
  d_0;

-- after the analyses
DROP VIEW IF EXISTS study_cohort;
