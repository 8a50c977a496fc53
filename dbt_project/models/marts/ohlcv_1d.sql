{{
    config(
        partition_by=cryptopipe.mart_partition_by(),
        incremental_predicates=cryptopipe.window_merge_predicates(86400)
    )
}}

{{ cryptopipe.ohlcv_mart(86400, is_incremental()) }}
