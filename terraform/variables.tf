variable "project_id" {
  type        = string
  description = "GCP project that hosts the cryptopipe datasets."
}

variable "region" {
  type        = string
  description = "BigQuery location and KMS key ring region."
  default     = "US"
}

variable "kms_key_name" {
  type        = string
  description = "Full resource name of the Cloud KMS key used as CMEK for every dataset and table."
}

variable "labels" {
  type        = map(string)
  description = "Labels added to every resource."
  default     = { app = "cryptopipe" }
}

variable "pubsub_kms_key_name" {
  type        = string
  description = "Full resource name of the Cloud KMS key used as CMEK for the Pub/Sub topics; null reuses kms_key_name (set it when the BigQuery key's location does not suit Pub/Sub)."
  default     = null
}
