with

source as (

    select * from {{ source('exchanges', 'trades') }}

),

renamed as (

    select
        exchange,
        symbol,
        trade_id,
        ts,
        trade_date,
        cast(price as {{ cryptopipe.double_type() }}) as price,
        cast(amount as {{ cryptopipe.double_type() }}) as amount,
        side,
        source as ingest_source,
        ingested_at

    from source

)

select * from renamed
