"""Card-fraud features: the definitions `featureledger demo` writes into its repository."""

from datetime import timedelta

from featureledger import Entity, FeatureGroup, FeatureView, Field
from featureledger.contracts import Contract, MaxNullFraction, Range
from featureledger.definitions import FileSource, SQLTransform

user = Entity("user", join_keys=["user_id"], description="A card holder")
merchant = Entity("merchant", join_keys=["merchant_id"], description="A card acceptor")

user_profile = FeatureGroup(
    "user_profile",
    user,
    event_time=None,  # static reference data: one row per user, joined on the key alone
    features=[
        Field("signup_channel", "string"),
        Field("home_country", "string", classification="pii"),
        Field("credit_limit", "float64", description="Card limit in EUR"),
    ],
    online=True,
    owner="risk-data",
    description="Slowly changing profile attributes of each card holder",
)

user_txn_stats = FeatureGroup(
    "user_txn_stats",
    user,
    event_time="event_timestamp",
    created_time="created_timestamp",
    ttl=timedelta(days=2),
    features=[
        Field("txn_count_24h", "int64"),
        Field("txn_amount_24h", "float64"),
        Field("avg_amount_7d", "float64"),
        Field("distinct_merchants_7d", "int64"),
    ],
    online=True,
    owner="risk-data",
    description="Rolling spending aggregates per user, recomputed hourly",
    # rows that break the contract are held back for repair; the rest is published
    policy="quarantine",
    contract=Contract(
        "user_txn_stats",
        rules=[
            Range("txn_count_24h", min=0),
            Range("txn_amount_24h", min=0.0),
            Range("avg_amount_7d", min=0.0, max=10_000.0),
            MaxNullFraction("avg_amount_7d", 0.05, severity="warn"),
        ],
        owner="risk-data",
    ),
)

merchant_stats = FeatureGroup(
    "merchant_stats",
    merchant,
    event_time="event_timestamp",
    ttl=timedelta(days=30),
    online=True,
    features=[
        Field("fraud_rate_30d", "float64"),
        Field("txn_count_30d", "int64"),
        Field("category", "string"),
    ],
    owner="risk-data",
    description="Daily merchant risk aggregates",
)

# a feature pipeline: computed from the raw transaction log, one window at a time
merchant_daily = FeatureGroup(
    "merchant_daily",
    merchant,
    ttl=timedelta(days=2),
    online=True,
    features=[Field("merchant_txn_1d", "int64"), Field("merchant_avg_amount_1d", "float64")],
    source=FileSource("raw/transactions.parquet", licenses=("internal",)),
    transform=SQLTransform(
        """
        SELECT merchant_id,
               date_trunc('day', event_timestamp) + INTERVAL 1 DAY AS event_timestamp,
               count(*) AS merchant_txn_1d,
               avg(amount) AS merchant_avg_amount_1d
        FROM source
        GROUP BY ALL
        """
    ),
    owner="risk-data",
    description="Daily merchant activity, computed from the raw transaction log",
)

fraud = FeatureView(
    "fraud",
    [
        user_txn_stats,
        merchant_stats,
        merchant_daily,
        user_profile[["signup_channel", "credit_limit"]],
    ],
    use="commercial",
    description="Features of the card-fraud model",
)
