//! Strict JSON: duplicate member names are an error at every depth.
//!
//! serde_json keeps the last of two equal names; JOSE (RFC 7515 section 5.2) says a parser
//! must either reject duplicates or keep only the last, and we reject. Depth is bounded by
//! serde_json's recursion limit (128), so deep nesting is an error, never a stack overflow;
//! arrays and objects hold at most 1024 items.

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A `serde_json::Value` that refuses duplicate member names while parsing.
struct StrictValue(Value);

impl<'de> de::Deserialize<'de> for StrictValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

/// Most elements of one array, or members of one object (SECURITY.md F5: huge arrays are
/// refused). Real tokens and key sets stay far below it.
const MAX_ITEMS: usize = 1024;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            if items.len() == MAX_ITEMS {
                return Err(de::Error::custom("array too long"));
            }
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(v) = map.next_value_seed(StrictSeed)?;
            if out.len() == MAX_ITEMS {
                return Err(de::Error::custom("object has too many members"));
            }
            if out.insert(key, v).is_some() {
                return Err(de::Error::custom("duplicate member name"));
            }
        }
        Ok(Value::Object(out))
    }
}

struct StrictSeed;

impl<'de> DeserializeSeed<'de> for StrictSeed {
    type Value = StrictValue;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<StrictValue, D::Error> {
        de::Deserialize::deserialize(d)
    }
}

/// Parses a JSON object, refusing duplicate names, a BOM, trailing bytes and non-objects.
pub(crate) fn object(bytes: &[u8]) -> Result<Map<String, Value>, &'static str> {
    // serde_json refuses a BOM and trailing non-whitespace by itself.
    match serde_json::from_slice::<StrictValue>(bytes) {
        Ok(StrictValue(Value::Object(map))) => Ok(map),
        Ok(_) => Err("not a JSON object"),
        Err(_) => Err("not valid JSON, or a duplicate member name"),
    }
}

/// Parses a document into `T`, refusing duplicate member names anywhere.
pub(crate) fn from_slice_strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let StrictValue(v) = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    serde_json::from_value(v).map_err(|e| e.to_string())
}
