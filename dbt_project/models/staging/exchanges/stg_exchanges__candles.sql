with

source as (

    select * from {{ source('exchanges', 'candles') }}

),

renamed as (

    select
        exchange,
        symbol,
        timeframe,
        ts,
        candle_date,
        cast(open as {{ cryptopipe.double_type() }}) as open,
        cast(high as {{ cryptopipe.double_type() }}) as high,
        cast(low as {{ cryptopipe.double_type() }}) as low,
        cast(close as {{ cryptopipe.double_type() }}) as close,
        cast(volume as {{ cryptopipe.double_type() }}) as volume,
        source as ingest_source,
        ingested_at

    from source

)

select * from renamed
