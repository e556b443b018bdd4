//! What goes over the wire (the protocol in `docs/protocol.md`): the body envelope, its
//! gzip framing, what a body costs decoded, request deadlines, the error half of a reply, and what the kit reads off a
//! delivery's properties.

pub(crate) mod cost;
pub mod deadline;
pub(crate) mod delivery;
pub mod envelope;
pub(crate) mod gzip;
pub mod headers;
pub mod reply_error;

pub use delivery::header_u64;
