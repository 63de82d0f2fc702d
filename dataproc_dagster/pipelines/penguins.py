"""Sample pipeline: the Palmer penguins dataset into the embedded ClickHouse, daily.

The data (344 penguins observed on three islands of the Palmer Archipelago, 2007-2009, by
Gorman, Williams and Fraser; CC0) ships inside the ``palmerpenguins`` package, so the
pipeline runs offline. The transformation cleans and derives per-row measures; an ELT step
then rebuilds a per-species summary inside ClickHouse.
"""

from __future__ import annotations

import warnings
from importlib.resources import files

import numpy as np
import pandas as pd
from dagster import BetaWarning
from dagster_pandas import PandasColumn, create_dagster_pandas_dataframe_type

from dataproc_dagster import (
    create_clickhouse_loader,
    create_etl_pipeline,
    create_file_extractor,
    create_sql_step,
    create_transformer,
)

# Owners of the pipeline's assets in the Dagster catalog.
OWNERS = ["team:data-engineering"]
PENGUINS_CSV = files("palmerpenguins") / "data" / "penguins.csv"
SPECIES = {"Adelie", "Chinstrap", "Gentoo"}
# Text arrives in transformers as pandas ``string[pyarrow]`` (see docs/architecture.md).
TEXT_DTYPES = {"string", "object", "category"}
ISLANDS = {"Biscoe", "Dream", "Torgersen"}

with warnings.catch_warnings():
    warnings.simplefilter("ignore", BetaWarning)  # dagster-pandas marks its column API beta
    PenguinFrame = create_dagster_pandas_dataframe_type(
        name="PenguinFrame",
        columns=[
            PandasColumn.categorical_column(
                "species", categories=SPECIES, of_types=TEXT_DTYPES, non_nullable=True
            ),
            PandasColumn.categorical_column(
                "island", categories=ISLANDS, of_types=TEXT_DTYPES, non_nullable=True
            ),
            PandasColumn.float_column("bill_length_mm", min_value=10, max_value=100),
            PandasColumn.float_column("body_mass_kg", min_value=1, max_value=10),
            PandasColumn.integer_column("year", min_value=2007, max_value=2009, non_nullable=True),
        ],
    )


def clean_penguins(df: pd.DataFrame) -> pd.DataFrame:
    """Drop birds with no measurement, type the columns and derive body mass and bill shape."""
    measures = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    df = df.dropna(subset=measures, how="all").copy()
    df["flipper_length_mm"] = df["flipper_length_mm"].round().astype("Int64")
    df["body_mass_g"] = df["body_mass_g"].round().astype("Int64")
    df["year"] = df["year"].astype("int64")
    df["sex"] = df["sex"].where(df["sex"].isin(["male", "female"]), None)
    df["body_mass_kg"] = (df["body_mass_g"].astype("float64") / 1000).round(3)
    df["bill_ratio"] = (df["bill_length_mm"] / df["bill_depth_mm"]).round(4)
    df["size_class"] = pd.cut(
        df["body_mass_g"].astype("float64"),
        bins=[0, 3500, 4750, np.inf],
        labels=["small", "medium", "large"],
    ).astype("object")
    return df


pipeline = create_etl_pipeline(
    name="penguins",
    extractor=create_file_extractor(str(PENGUINS_CSV)),
    transformer=create_transformer(clean_penguins, output_type=PenguinFrame),
    loader=create_clickhouse_loader(
        "penguins", mode="replace", order_by=["species", "island", "year"]
    ),
    sql_steps=[
        create_sql_step(
            """
            SELECT species,
                   count() AS birds,
                   round(avg(body_mass_kg), 3) AS avg_body_mass_kg,
                   round(avg(bill_ratio), 4) AS avg_bill_ratio,
                   countIf(sex = 'female') AS females,
                   countIf(sex = 'male') AS males
            FROM penguins
            GROUP BY species
            """,
            "penguin_species_stats",
            order_by=["species"],
        )
    ],
    schedule="0 6 * * *",
    timezone="UTC",
    description="Palmer penguins CSV -> clean + derive -> ClickHouse penguins (replace) -> "
    "per-species summary (SQL)",
)
