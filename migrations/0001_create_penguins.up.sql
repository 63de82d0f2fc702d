-- The table the sample pipeline `penguins` loads (Palmer penguins, cleaned and derived).
-- Measures are Nullable: the source has missing values. The loader's `replace` mode builds its
-- staging table AS this one, so these types are kept on every run.
CREATE TABLE IF NOT EXISTS {database}.penguins {cluster}
(
    species LowCardinality(String),
    island LowCardinality(String),
    bill_length_mm Nullable(Float64),
    bill_depth_mm Nullable(Float64),
    flipper_length_mm Nullable(Int64),
    body_mass_g Nullable(Int64),
    sex Nullable(String),
    year Int64,
    body_mass_kg Nullable(Float64),
    bill_ratio Nullable(Float64),
    size_class LowCardinality(Nullable(String))
)
ENGINE = MergeTree
ORDER BY (species, island, year);
