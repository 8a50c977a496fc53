output "candles_table_id" {
  description = "Fully qualified id of raw.candles."
  value       = google_bigquery_table.candles.id
}

output "dead_letters_table_id" {
  description = "Fully qualified id of ops.dead_letters."
  value       = google_bigquery_table.dead_letters.id
}
