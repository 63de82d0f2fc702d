-- The table the sample pipeline (Palmer penguins) loads.
CREATE TABLE IF NOT EXISTS {database}.penguins {cluster}
(
    species LowCardinality(String),
    island LowCardinality(String),
    bill_length_mm Nullable(Float64),
    bill_depth_mm Nullable(Float64),
    flipper_length_mm Nullable(Int64),
    body_mass_g Nullable(Int64),
    sex Nullable(String),
    year Int64
)
ENGINE = MergeTree
ORDER BY (species, island, year);
