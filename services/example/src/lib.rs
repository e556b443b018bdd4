//! example service
