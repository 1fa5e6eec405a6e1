//! [`Batch`]: one agent's documents ready to send, packed in three buffers (their message
//! ids, their routing keys and their JSON bodies) rather than three allocations per
//! document. A pass makes some
//! 100,000 such strings a minute; allocating and freeing each one cost the collector more
//! than writing it.

use crate::broker::message_id::fit_short_string;

/// Documents ready to send, in order: each its AMQP message id, its routing key and its
/// JSON body.
#[derive(Debug, Clone, Default)]
pub(crate) struct Batch {
    /// The message ids, one after the other.
    ids: String,
    /// The routing keys, one after the other.
    keys: String,
    /// The bodies, one after the other.
    bodies: Vec<u8>,
    /// Where each document's id, key and body end in `ids`, `keys` and `bodies` (each
    /// starts where the one before it ends).
    ends: Vec<DocumentEnd>,
}

#[derive(Debug, Clone, Copy, Default)]
struct DocumentEnd {
    id: usize,
    key: usize,
    body: usize,
}

/// One document of a [`Batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outgoing<'a> {
    pub(crate) message_id: &'a str,
    pub(crate) routing_key: &'a str,
    pub(crate) body: &'a [u8],
}

/// Room a batch makes per document up front: a document without raw metrics is about
/// 470 bytes, its id about 75; larger ones only cost a regrowth.
const BODY_BYTES: usize = 512;
const ID_BYTES: usize = 80;
const KEY_BYTES: usize = 32;

impl Batch {
    /// An empty batch with room for `documents` usual documents.
    pub(crate) fn with_capacity(documents: usize) -> Batch {
        Batch {
            ids: String::with_capacity(documents * ID_BYTES),
            keys: String::with_capacity(documents * KEY_BYTES),
            bodies: Vec::with_capacity(documents * BODY_BYTES),
            ends: Vec::with_capacity(documents),
        }
    }

    /// Appends a document: `write_id` writes its message id, `write_key` its routing key
    /// (both fitted to AMQP here) and `write_body` its JSON.
    pub(crate) fn push(
        &mut self,
        write_id: impl FnOnce(&mut String),
        write_key: impl FnOnce(&mut String),
        write_body: impl FnOnce(&mut Vec<u8>),
    ) {
        fit_written(&mut self.ids, write_id);
        fit_written(&mut self.keys, write_key);
        write_body(&mut self.bodies);
        self.ends.push(DocumentEnd {
            id: self.ids.len(),
            key: self.keys.len(),
            body: self.bodies.len(),
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The document at `index`, if there is one.
    pub(crate) fn get(&self, index: usize) -> Option<Outgoing<'_>> {
        let end = *self.ends.get(index)?;
        let start = match index.checked_sub(1) {
            Some(before) => *self.ends.get(before)?,
            None => DocumentEnd::default(),
        };
        Some(Outgoing {
            message_id: self.ids.get(start.id..end.id)?,
            routing_key: self.keys.get(start.key..end.key)?,
            body: self.bodies.get(start.body..end.body)?,
        })
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = Outgoing<'_>> {
        (0..self.len()).filter_map(|index| self.get(index))
    }
}

/// Appends what `write` writes to `buffer`, fitted to an AMQP short string.
fn fit_written(buffer: &mut String, write: impl FnOnce(&mut String)) {
    let start = buffer.len();
    write(buffer);
    if buffer.len() - start > crate::wire_limits::SHORT_STR_MAX {
        let written = buffer.split_off(start);
        buffer.push_str(&fit_short_string(written));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire_limits::SHORT_STR_MAX;

    fn batch_of(docs: &[(&str, &str)]) -> Batch {
        let mut batch = Batch::default();
        for (id, body) in docs {
            batch.push(
                |out| out.push_str(id),
                |out| {
                    out.push_str("key-of-");
                    out.push_str(id);
                },
                |out| out.extend_from_slice(body.as_bytes()),
            );
        }
        batch
    }

    #[test]
    fn each_document_comes_back_as_it_was_pushed_in_order() {
        let docs = [("a@1", "{\"x\":1}"), ("", ""), ("é@2", "{}")];
        let batch = batch_of(&docs);
        assert_eq!(batch.len(), 3);
        assert!(batch
            .iter()
            .all(|d| d.routing_key == format!("key-of-{}", d.message_id)));
        let back: Vec<(String, String)> = batch
            .iter()
            .map(|d| (d.message_id.into(), String::from_utf8_lossy(d.body).into()))
            .collect();
        let pushed: Vec<(String, String)> = docs
            .iter()
            .map(|(i, b)| (i.to_string(), b.to_string()))
            .collect();
        assert_eq!(back, pushed);
        assert_eq!(batch.get(3), None);
    }

    #[test]
    fn a_long_message_id_and_routing_key_are_fitted_to_amqp_as_fit_short_string_does() {
        let long = format!("{}@1541084157.12885", "é".repeat(200));
        let batch = batch_of(&[("short@1", "{}"), (&long, "{\"y\":2}"), ("next@3", "[]")]);
        let fitted = batch.get(1).expect("second document");
        assert!(fitted.message_id.len() <= SHORT_STR_MAX);
        assert_eq!(fitted.message_id, fit_short_string(long.clone()));
        let key = format!("key-of-{long}");
        assert!(fitted.routing_key.len() <= SHORT_STR_MAX);
        assert_eq!(fitted.routing_key, fit_short_string(key));
        assert_eq!(fitted.body, b"{\"y\":2}");
        assert_eq!(batch.get(0).map(|d| d.message_id), Some("short@1"));
        assert_eq!(batch.get(2).map(|d| d.message_id), Some("next@3"));
        assert_eq!(batch.get(2).map(|d| d.routing_key), Some("key-of-next@3"));
    }
}
