"""The card-fraud demo domain: definitions, deterministic data and the guided run."""
