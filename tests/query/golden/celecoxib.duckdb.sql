-- the cohort, once per run
CREATE TEMPORARY TABLE study_cohort AS
WITH entry_events AS (
  SELECT
    t.person_id AS person_id,
    t.drug_exposure_start_date AS start_date,
    COALESCE(t.drug_exposure_end_date, t.drug_exposure_start_date) AS end_date,
    4 AS domain_rank,
    t.drug_exposure_id AS event_id,
    t.drug_concept_id AS concept_id,
    t.visit_occurrence_id AS visit_id,
    CAST(NULL AS DOUBLE) AS value_num
  FROM drug_exposure AS t
  WHERE
    NOT t.person_id IS NULL
    AND NOT t.drug_exposure_start_date IS NULL
    AND (
      (
        t.drug_concept_id IN (
          SELECT
            ca.descendant_concept_id
          FROM concept_ancestor AS ca
          WHERE
            ca.ancestor_concept_id IN (1118084)
          UNION ALL
          SELECT
            1118084
        )
      )
    )
), entries AS (
  SELECT
    *,
    ROW_NUMBER() OVER (
      PARTITION BY person_id
      ORDER BY start_date ASC, domain_rank ASC, event_id ASC, concept_id ASC
    ) AS entry_no
  FROM entry_events
), entered AS (
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
  WHERE
    e.entry_no = 1
), observed AS (
  SELECT
    c.person_id AS person_id,
    c.entry_no AS entry_no,
    op.observation_period_start_date AS op_start,
    op.observation_period_end_date AS op_end,
    ROW_NUMBER() OVER (
      PARTITION BY c.person_id, c.entry_no
      ORDER BY op.observation_period_start_date ASC, op.observation_period_end_date DESC
    ) AS op_rank
  FROM entered AS c
  JOIN observation_period AS op
    ON op.person_id = c.person_id
    AND op.observation_period_start_date <= c.index_date
    AND op.observation_period_end_date >= c.index_date
), candidates AS (
  SELECT
    c.person_id,
    c.entry_no,
    c.index_date,
    c.domain_rank,
    c.event_id,
    c.concept_id,
    c.visit_id,
    c.event_end,
    c.gender_concept_id,
    c.year_of_birth,
    c.age,
    o.op_start AS op_start,
    o.op_end AS op_end
  FROM entered AS c
  LEFT JOIN observed AS o
    ON o.person_id = c.person_id AND o.entry_no = c.entry_no AND o.op_rank = 1
), ev_1 AS (
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
), crit_1 AS (
  SELECT
    c.person_id AS person_id,
    c.entry_no AS entry_no,
    COUNT(*) AS n
  FROM candidates AS c
  JOIN ev_1 AS t
    ON t.person_id = c.person_id AND t.start_date <= (
      c.index_date - 1
    )
  GROUP BY
    c.person_id,
    c.entry_no
), cohort_entries AS (
  SELECT
    c.*
  FROM candidates AS c
  LEFT JOIN crit_1 AS k_1
    ON k_1.person_id = c.person_id AND k_1.entry_no = c.entry_no
  WHERE
    (
      NOT c.op_start IS NULL
      AND (
        c.op_start + 365
      ) <= c.index_date
      AND c.op_end >= c.index_date
    )
    AND (
      NOT c.age IS NULL AND c.age >= 18
    )
    AND k_1.n IS NULL
)
SELECT
  person_id,
  entry_no,
  index_date,
  gender_concept_id,
  age,
  op_start,
  op_end
FROM cohort_entries;

-- analysis 1: count
WITH dims AS (
  SELECT
    f.*
  FROM study_cohort AS f
)
SELECT
  COUNT(DISTINCT person_id) AS "persons"
FROM dims;

-- analysis 2: count
WITH dims AS (
  SELECT
    f.*,
    f.gender_concept_id AS d_0,
    CAST(FLOOR(CAST(f.age AS DOUBLE) / 10) AS BIGINT) * 10 AS d_1
  FROM study_cohort AS f
)
SELECT
  d_0 AS "sex",
  d_1 AS "age_band",
  COUNT(DISTINCT person_id) AS "persons"
FROM dims
GROUP BY
  d_0,
  d_1;

-- analysis 3: outcome
WITH dims AS (
  SELECT
    f.*,
    f.gender_concept_id AS d_0
  FROM study_cohort AS f
), ev_1 AS (
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
), hits AS (
  SELECT
    f.person_id AS person_id,
    f.entry_no AS entry_no,
    MIN(t.start_date) AS first_hit
  FROM study_cohort AS f
  JOIN ev_1 AS t
    ON t.person_id = f.person_id
    AND t.start_date >= (
      f.index_date + 1
    )
    AND t.start_date <= (
      f.index_date + 365
    )
  GROUP BY
    f.person_id,
    f.entry_no
), per_entry AS (
  SELECT
    f.person_id AS person_id,
    f.d_0 AS d_0,
    CASE WHEN NOT h.first_hit IS NULL THEN 1 ELSE 0 END AS has_hit
  FROM dims AS f
  LEFT JOIN hits AS h
    ON h.person_id = f.person_id AND h.entry_no = f.entry_no
)
SELECT
  d_0 AS "sex",
  COUNT(DISTINCT person_id) AS "persons",
  COUNT(DISTINCT CASE WHEN has_hit = 1 THEN person_id END) AS "outcome_persons",
  CASE
    WHEN (
      COUNT(DISTINCT person_id)
    ) = 0
    THEN NULL
    ELSE CAST(COUNT(DISTINCT CASE WHEN has_hit = 1 THEN person_id END) AS DOUBLE) / CAST(COUNT(DISTINCT person_id) AS DOUBLE)
  END AS "proportion"
FROM per_entry
GROUP BY
  d_0;

-- after the analyses
DROP TABLE IF EXISTS study_cohort;
