//! greeter service
