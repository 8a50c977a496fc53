{{
    config(
        partition_by=cryptopipe.mart_partition_by(),
        incremental_predicates=cryptopipe.window_merge_predicates(3600)
    )
}}

{{ cryptopipe.ohlcv_mart(3600, is_incremental()) }}
