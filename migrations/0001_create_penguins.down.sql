DROP TABLE IF EXISTS {database}.penguins {cluster} SYNC;
