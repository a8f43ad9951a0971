from datetime import timedelta

from featureledger import Entity, FeatureGroup, FeatureView, Field

user = Entity("user", join_keys=["user_id"])
merchant = Entity("merchant", join_keys=["merchant_id"])

user_profile = FeatureGroup(  # static: no event_time, one row per user
    "user_profile",
    user,
    event_time=None,
    features=[Field("signup_channel", "string"), Field("credit_limit", "float64")],
)
user_txn_stats = FeatureGroup(
    "user_txn_stats",
    user,
    created_time="created_timestamp",
    ttl=timedelta(days=2),
    features=[Field("txn_count_24h", "int64"), Field("txn_amount_24h", "float64")],
)
merchant_stats = FeatureGroup(
    "merchant_stats",
    merchant,
    ttl=timedelta(days=30),
    features=[Field("fraud_rate_30d", "float64")],
)
fraud = FeatureView("fraud", [user_txn_stats, merchant_stats, user_profile[["credit_limit"]]])
