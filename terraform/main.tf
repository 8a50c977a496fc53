# Warehouse tables of the historical path. Partition and cluster fields must equal the ones the
# code uses (cryptopipe_dagster/lib/warehouse): raw.candles is partitioned by candle_date and
# clustered by exchange, symbol, timeframe. Streaming, Pub/Sub and IAM arrive with later issues.

resource "google_bigquery_dataset" "raw" {
  project    = var.project_id
  dataset_id = "raw"
  location   = var.region
  labels     = var.labels

  default_encryption_configuration {
    kms_key_name = var.kms_key_name
  }
}

resource "google_bigquery_dataset" "ops" {
  project    = var.project_id
  dataset_id = "ops"
  location   = var.region
  labels     = var.labels

  default_encryption_configuration {
    kms_key_name = var.kms_key_name
  }
}

resource "google_bigquery_table" "candles" {
  project             = var.project_id
  dataset_id          = google_bigquery_dataset.raw.dataset_id
  table_id            = "candles"
  deletion_protection = true
  labels              = var.labels

  time_partitioning {
    type  = "DAY"
    field = "candle_date"
  }
  clustering = ["exchange", "symbol", "timeframe"]

  encryption_configuration {
    kms_key_name = var.kms_key_name
  }

  schema = jsonencode([
    { name = "exchange", type = "STRING", mode = "REQUIRED" },
    { name = "symbol", type = "STRING", mode = "REQUIRED" },
    { name = "timeframe", type = "STRING", mode = "REQUIRED" },
    { name = "ts", type = "TIMESTAMP", mode = "REQUIRED" },
    { name = "open", type = "FLOAT64", mode = "REQUIRED" },
    { name = "high", type = "FLOAT64", mode = "REQUIRED" },
    { name = "low", type = "FLOAT64", mode = "REQUIRED" },
    { name = "close", type = "FLOAT64", mode = "REQUIRED" },
    { name = "volume", type = "FLOAT64", mode = "REQUIRED" },
    { name = "source", type = "STRING", mode = "REQUIRED" },
    { name = "ingested_at", type = "TIMESTAMP", mode = "REQUIRED" },
    { name = "candle_date", type = "DATE", mode = "REQUIRED" },
  ])
}

resource "google_bigquery_table" "dead_letters" {
  project             = var.project_id
  dataset_id          = google_bigquery_dataset.ops.dataset_id
  table_id            = "dead_letters"
  deletion_protection = true
  labels              = var.labels

  time_partitioning {
    type  = "DAY"
    field = "first_seen_at"
  }
  clustering = ["dataset", "exchange", "reason_code"]

  encryption_configuration {
    kms_key_name = var.kms_key_name
  }

  schema = jsonencode([
    { name = "dead_letter_id", type = "STRING", mode = "REQUIRED" },
    { name = "dataset", type = "STRING", mode = "REQUIRED" },
    { name = "exchange", type = "STRING", mode = "REQUIRED" },
    { name = "symbol", type = "STRING", mode = "NULLABLE" },
    { name = "timeframe", type = "STRING", mode = "NULLABLE" },
    { name = "source", type = "STRING", mode = "REQUIRED" },
    { name = "reason_code", type = "STRING", mode = "REQUIRED" },
    { name = "check_name", type = "STRING", mode = "REQUIRED" },
    { name = "error_detail", type = "STRING", mode = "NULLABLE" },
    { name = "raw_payload", type = "STRING", mode = "REQUIRED" },
    { name = "first_seen_at", type = "TIMESTAMP", mode = "REQUIRED" },
    { name = "replayed_at", type = "TIMESTAMP", mode = "NULLABLE" },
  ])
}
