{{
    config(
        partition_by=cryptopipe.mart_partition_by(),
        incremental_predicates=cryptopipe.window_merge_predicates(3600, open_ended=true)
    )
}}

{{ cryptopipe.indicators_mart('ohlcv_1h', 3600, is_incremental()) }}
