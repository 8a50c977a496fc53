# Pub/Sub topology of the streaming path. It must equal MARKET_DATA_TOPOLOGY in
# cryptopipe_dagster/lib/pubsub/topology.py resource for resource (names, ack deadline, retention,
# retry backoffs, dead-letter topic and attempts, ordering flag): tests/lib/pubsub/
# test_terraform_parity.py reads both. topology.py explains why the loader subscription is not
# ordered although publishers use ordering keys (exchange:symbol).
#
# Dead-lettering and CMEK are done by the project's Pub/Sub service agent, which therefore needs
# publisher on the dead-letter topic, subscriber on the source subscription (to ack the message it
# forwarded) and encrypter/decrypter on the topics' key.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  pubsub_kms_key_name  = coalesce(var.pubsub_kms_key_name, var.kms_key_name)
}

resource "google_kms_crypto_key_iam_member" "pubsub_service_agent_cmek" {
  crypto_key_id = local.pubsub_kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.pubsub_service_agent
}

# Micro-batches of trades and candles, one market per message (Arrow IPC, see lib/pubsub/codec.py).
resource "google_pubsub_topic" "market_data" {
  project                    = var.project_id
  name                       = "market-data"
  kms_key_name               = local.pubsub_kms_key_name
  message_retention_duration = "86400s"
  labels                     = var.labels

  depends_on = [google_kms_crypto_key_iam_member.pubsub_service_agent_cmek]
}

resource "google_pubsub_topic" "market_data_dead_letter" {
  project                    = var.project_id
  name                       = "market-data-dead-letter"
  kms_key_name               = local.pubsub_kms_key_name
  message_retention_duration = "604800s"
  labels                     = var.labels

  depends_on = [google_kms_crypto_key_iam_member.pubsub_service_agent_cmek]
}

# Pulled by the Dagster sensor; a batch is acked only once it is durably landed.
resource "google_pubsub_subscription" "market_data_loader" {
  project                    = var.project_id
  name                       = "market-data-loader"
  topic                      = google_pubsub_topic.market_data.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  retain_acked_messages      = false
  enable_message_ordering    = false
  labels                     = var.labels

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "1s"
    maximum_backoff = "60s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.market_data_dead_letter.id
    max_delivery_attempts = 5
  }
}

# Dead letters wait here for inspection and replay (they keep the CloudPubSubDeadLetter* attributes).
resource "google_pubsub_subscription" "market_data_dead_letter_audit" {
  project                    = var.project_id
  name                       = "market-data-dead-letter-audit"
  topic                      = google_pubsub_topic.market_data_dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  retain_acked_messages      = false
  enable_message_ordering    = false
  labels                     = var.labels

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }
}

resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.market_data_dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "loader_dead_letter_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.market_data_loader.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
