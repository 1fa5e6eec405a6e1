//! The AMQP 0-9-1 wire limits that settings must respect, a leaf of constants: `config`
//! refuses a value the broker could not carry, and `broker/amqp` refuses to send one.

/// The longest short string (routing key, vhost, message id...) the protocol carries.
pub(crate) const SHORT_STR_MAX: usize = 255;
