//! One flat TOML table read by two owners: a library type's deserialiser
//! takes its keys, and the gateway takes the keys it reads itself, in one
//! pass over the table, so every error still points at its line.
//!
//! Used where a section is a library's configuration plus a few gateway
//! keys: each `[[providers]]` entry (`api_key_env`, `direct_models`) and
//! `[health]` (`shared`, `shared_password_env`).

use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess};

/// The gateway's keys of a split table.
pub(super) trait OwnKeys<'de>: Default {
    /// The gateway's key names.
    const NAMES: &'static [&'static str];

    /// Reads the value of `key` (one of [`NAMES`](Self::NAMES)) from `map`;
    /// a key given twice is an error.
    fn read<A: MapAccess<'de>>(&mut self, key: &'static str, map: &mut A) -> Result<(), A::Error>;
}

/// Reads a table: `library` deserialises the library's part (through the
/// deserialiser it is handed), whose keys are `library_keys`; the gateway's
/// keys go to `O`. An unknown key is refused listing `all_keys`.
pub(super) fn read<'de, A, O, T>(
    map: A,
    library_keys: &'static [&'static str],
    all_keys: &'static [&'static str],
    library: impl FnOnce(MapAccessDeserializer<Split<'_, A, O>>) -> Result<T, A::Error>,
) -> Result<(T, O), A::Error>
where
    A: MapAccess<'de>,
    O: OwnKeys<'de>,
{
    let mut own = O::default();
    let value = library(MapAccessDeserializer::new(Split {
        map,
        own: &mut own,
        library_keys,
        all_keys,
        lifetime: PhantomData,
    }))?;
    Ok((value, own))
}

/// The table's map as the library's deserialiser sees it: the gateway's
/// keys (and their values) are taken out on the way.
pub(super) struct Split<'a, A, O> {
    map: A,
    own: &'a mut O,
    library_keys: &'static [&'static str],
    all_keys: &'static [&'static str],
    lifetime: PhantomData<&'a ()>,
}

/// A key of the table: the library's (as its seed read it), or one of the
/// gateway's.
enum Key<K> {
    Library(K),
    Own(&'static str),
}

impl<'de, A: MapAccess<'de>, O: OwnKeys<'de>> MapAccess<'de> for Split<'_, A, O> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let mut seed = Some(seed);
        loop {
            let key = self.map.next_key_seed(KeySeed {
                seed: &mut seed,
                own: O::NAMES,
                library_keys: self.library_keys,
                all_keys: self.all_keys,
            })?;
            match key {
                None => return Ok(None),
                Some(Key::Library(key)) => return Ok(Some(key)),
                Some(Key::Own(name)) => self.own.read(name, &mut self.map)?,
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

/// Reads one key inside the underlying map's own key read (so an error
/// points at the key), handing the library's keys to the library's seed.
struct KeySeed<'a, K> {
    seed: &'a mut Option<K>,
    own: &'static [&'static str],
    library_keys: &'static [&'static str],
    all_keys: &'static [&'static str],
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, K> {
    type Value = Key<K::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let name = <String as serde::Deserialize>::deserialize(deserializer)?;
        if let Some(own) = self.own.iter().find(|own| **own == name) {
            return Ok(Key::Own(own));
        }
        if self.library_keys.contains(&name.as_str()) {
            return match self.seed.take() {
                Some(seed) => seed.deserialize(name.into_deserializer()).map(Key::Library),
                // `Split` gives each key read a seed of its own.
                None => Err(de::Error::custom("a key was read without a seed")),
            };
        }
        Err(de::Error::unknown_field(&name, self.all_keys))
    }
}

/// Reads `key`'s value into `slot`, refusing a second one.
pub(super) fn once<'de, A: MapAccess<'de>, T: serde::Deserialize<'de>>(
    slot: &mut Option<T>,
    key: &'static str,
    map: &mut A,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(key));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}
