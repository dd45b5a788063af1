//! The current versions an import may change: those of the communes its records name, loaded as
//! the records arrive, and only of communes inside the upload's [`WriteArea`]. Superseding and
//! retiring take their versions from here, so an import cannot reach a parcel outside its area
//! whatever its records say.

use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt, HashSet};

use landdb_model::{CommuneCode, ParcelKey, VersionId};
use landdb_store::{ParcelStore, StoreError};

use crate::area::WriteArea;

#[derive(Debug)]
pub struct CurrentInArea<'a> {
    area: WriteArea<'a>,
    /// By key: the current version and its fingerprint.
    versions: HashMap<ParcelKey, (VersionId, String)>,
    communes: BTreeSet<CommuneCode>,
}

impl<'a> CurrentInArea<'a> {
    pub fn new(area: WriteArea<'a>) -> Self {
        Self { area, versions: HashMap::new(), communes: BTreeSet::new() }
    }

    pub fn area(&self) -> &WriteArea<'a> {
        &self.area
    }

    /// Loads the current versions of those of `communes` that are inside the area and not
    /// loaded yet; the others are left out.
    pub async fn load<S: ParcelStore>(
        &mut self,
        store: &S,
        communes: impl IntoIterator<Item = &CommuneCode>,
    ) -> Result<(), StoreError> {
        let new: Vec<CommuneCode> = communes
            .into_iter()
            .filter(|c| !self.communes.contains(*c) && self.area.admits(c))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        for e in store.current_in_communes(&new).await? {
            self.versions.insert(e.key, (e.version, e.fingerprint));
        }
        self.communes.extend(new);
        Ok(())
    }

    /// The current version of `key` and its fingerprint, when the key is in a loaded commune.
    pub fn get(&self, key: &ParcelKey) -> Option<&(VersionId, String)> {
        self.versions.get(key)
    }

    /// The communes loaded, all inside the area.
    pub fn communes(&self) -> &BTreeSet<CommuneCode> {
        &self.communes
    }

    /// The versions of the loaded communes whose key the upload did not carry: what a
    /// replace-commune import retires.
    pub fn absent_from(&self, uploaded: &HashSet<ParcelKey>) -> Vec<VersionId> {
        let mut absent: Vec<VersionId> =
            self.versions.iter().filter(|(k, _)| !uploaded.contains(*k)).map(|(_, (v, _))| *v).collect();
        absent.sort();
        absent
    }
}
