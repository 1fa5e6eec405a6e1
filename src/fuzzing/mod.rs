//! The fuzz targets' one door to the parsers of outside input (`fuzz/`, CONTRIBUTING.md,
//! "Code"), built only with `--cfg fuzzing`. Each function takes any bytes, runs one
//! parser as a pass runs it, and panics only where what must hold does not: the parser
//! may refuse anything, never crash, and what it reads is checked, not only survived.

mod agent_http_answer;
mod agent_statistics;
mod amqp_frames;
mod broker_certificate;
mod master_agent_list;
mod sentinel_reply;
mod settings_addresses;
mod state_value;

pub use agent_http_answer::agent_http_answer;
pub use agent_statistics::agent_statistics;
pub use amqp_frames::amqp_frames;
pub use broker_certificate::broker_certificate;
pub use master_agent_list::master_agent_list;
pub use sentinel_reply::sentinel_reply;
pub use settings_addresses::settings_addresses;
pub use state_value::state_value;
