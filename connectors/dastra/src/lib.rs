//! Dastra: the API model and client, the sink, and the webhook receiver.
