//! Loosely typed JSON reading shared by agents' answers (`reading`) and masters' agent
//! lists (`mesos`): a value that should be an object but may be anything, and a scalar of
//! whatever type was sent.
//!
//! Both inputs come from many Mesos versions and from hand-edited fakes; one value of an
//! unexpected type must make that one entry or field unusable, never the whole answer,
//! so these types accept any JSON value and say what they found.

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::marker::PhantomData;

/// A value read as `T` when it is an object; anything else is skipped, not an error.
pub(crate) enum Object<T> {
    Is(T),
    Not,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjectVisitor(PhantomData))
    }
}

/// Reads an object's fields as `T` and skips anything that is not an object. (Serde would
/// read a struct from an array too; only an object is one here.)
struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = Object<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Object::Is)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Object<T>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Object::Not)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Object<T>, E> {
        Ok(Object::Not)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Object<T>, E> {
        Ok(Object::Not)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Object<T>, E> {
        Ok(Object::Not)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Object<T>, E> {
        Ok(Object::Not)
    }
    fn visit_str<E>(self, _: &str) -> Result<Object<T>, E> {
        Ok(Object::Not)
    }
    fn visit_unit<E>(self) -> Result<Object<T>, E> {
        Ok(Object::Not)
    }
}

/// A JSON value as far as a text, number or boolean field needs it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Scalar {
    #[default]
    Missing,
    Text(String),
    /// A whole number from 0 up.
    Unsigned(u64),
    /// A negative whole number.
    Signed(i64),
    Float(f64),
    Bool(bool),
    /// Any other value: null, arrays, objects.
    Other,
}

impl Scalar {
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Scalar::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The value as a finite float, if it is a number.
    pub(crate) fn float(&self) -> Option<f64> {
        let value = match *self {
            Scalar::Unsigned(n) => n as f64,
            Scalar::Signed(n) => n as f64,
            Scalar::Float(x) => x,
            _ => return None,
        };
        value.is_finite().then_some(value)
    }

    /// The value as a byte count: a non-negative whole number.
    pub(crate) fn bytes(&self) -> Option<u64> {
        match *self {
            Scalar::Unsigned(n) => Some(n),
            // A whole float below 2^64 converts exactly; anything else is not a byte count.
            Scalar::Float(x)
                if x >= 0.0 && x.fract() == 0.0 && x < 18_446_744_073_709_551_616.0 =>
            {
                Some(x as u64)
            }
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Text(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Unsigned(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(u64::try_from(v).map_or(Scalar::Signed(v), Scalar::Unsigned))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_none<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Pair {
        a: Scalar,
    }

    #[test]
    fn objects_are_read_and_anything_else_skipped() {
        let values: Vec<Object<Pair>> =
            serde_json::from_str(r#"[{"a": "x"}, [1, {"a": 1}], 3, "s", null, true, -1.5]"#)
                .expect("any JSON array");
        assert!(matches!(&values[0], Object::Is(Pair { a: Scalar::Text(t) }) if t == "x"));
        assert!(values[1..].iter().all(|v| matches!(v, Object::Not)));
    }

    #[test]
    fn scalars_say_what_they_found() {
        let values: Vec<Scalar> =
            serde_json::from_str(r#"["t", 5051, -1, 1.5, false, null, [1], {"x": 1}]"#)
                .expect("any JSON array");
        assert_eq!(
            values,
            [
                Scalar::Text("t".into()),
                Scalar::Unsigned(5051),
                Scalar::Signed(-1),
                Scalar::Float(1.5),
                Scalar::Bool(false),
                Scalar::Other,
                Scalar::Other,
                Scalar::Other
            ]
        );
        assert_eq!(values[0].text(), Some("t"));
        assert_eq!(values[1].text(), None);
        assert_eq!(values[3].float(), Some(1.5));
        assert_eq!(values[2].bytes(), None, "no negative byte count");
        assert_eq!(values[0].float(), None);
    }
}
