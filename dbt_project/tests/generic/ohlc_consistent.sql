{#- low <= open, close <= high on every bar (and low <= high). -#}
{% test ohlc_consistent(model) %}

select *
from {{ model }}
where not (
    low <= high
    and low <= open and open <= high
    and low <= close and close <= high
)

{% endtest %}
