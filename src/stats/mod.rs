//! The arithmetic of the collector, pure: agent answers and stored entries parsed into
//! readings, two readings turned into a document, and the app name of a task. Nothing
//! here touches the network, Redis or the broker, so all of it is tested by unit tests.

pub(crate) mod appname;
pub(crate) mod document;
pub(crate) mod json;
pub(crate) mod reading;
