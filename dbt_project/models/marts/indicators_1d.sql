{{
    config(
        partition_by=cryptopipe.mart_partition_by(),
        incremental_predicates=cryptopipe.window_merge_predicates(86400, open_ended=true)
    )
}}

{{ cryptopipe.indicators_mart('ohlcv_1d', 86400, is_incremental()) }}
