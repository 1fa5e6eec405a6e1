//! (class, method) ids of the methods used here.

pub(super) const CONNECTION_START: (u16, u16) = (10, 10);
pub(super) const CONNECTION_START_OK: (u16, u16) = (10, 11);
pub(super) const CONNECTION_TUNE: (u16, u16) = (10, 30);
pub(super) const CONNECTION_TUNE_OK: (u16, u16) = (10, 31);
pub(super) const CONNECTION_OPEN: (u16, u16) = (10, 40);
pub(super) const CONNECTION_OPEN_OK: (u16, u16) = (10, 41);
pub(super) const CONNECTION_CLOSE: (u16, u16) = (10, 50);
pub(super) const CONNECTION_CLOSE_OK: (u16, u16) = (10, 51);
pub(super) const CONNECTION_BLOCKED: (u16, u16) = (10, 60);
pub(super) const CONNECTION_UNBLOCKED: (u16, u16) = (10, 61);
pub(super) const CHANNEL_OPEN: (u16, u16) = (20, 10);
pub(super) const CHANNEL_OPEN_OK: (u16, u16) = (20, 11);
pub(super) const CHANNEL_CLOSE: (u16, u16) = (20, 40);
pub(super) const EXCHANGE_DECLARE: (u16, u16) = (40, 10);
pub(super) const EXCHANGE_DECLARE_OK: (u16, u16) = (40, 11);
pub(super) const QUEUE_DECLARE: (u16, u16) = (50, 10);
pub(super) const QUEUE_DECLARE_OK: (u16, u16) = (50, 11);
pub(super) const BASIC_PUBLISH: (u16, u16) = (60, 40);
pub(super) const BASIC_RETURN: (u16, u16) = (60, 50);
pub(super) const BASIC_ACK: (u16, u16) = (60, 80);
pub(super) const BASIC_NACK: (u16, u16) = (60, 120);
pub(super) const CONFIRM_SELECT: (u16, u16) = (85, 10);
pub(super) const CONFIRM_SELECT_OK: (u16, u16) = (85, 11);
