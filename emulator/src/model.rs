//! The emulator's data model: entity sets with a GUID primary key, alternate keys, typed attributes
//! (max length, required) and lookups, read from a small TOML file or built in.
//!
//! ```toml
//! [sets.accounts]
//! entity = "account"                 # the type name ($metadata, @odata.context)
//! key = "accountid"                  # the GUID primary key
//! alternate_keys = [["accountnumber"]]
//! [sets.accounts.attributes]
//! name = { type = "string", max_length = 160, required = true }
//! accountnumber = { type = "string", max_length = 20 }
//! revenue = { type = "decimal" }
//! [sets.contacts.lookups]
//! parentcustomerid = "accounts"      # "parentcustomerid@odata.bind": "/accounts(...)"
//! ```
//!
//! A set may say `elastic = true` (bulk messages succeed in part) or `bulk_messages = false` (no
//! CreateMultiple, UpdateMultiple, UpsertMultiple: the client falls back to `$batch`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The types an attribute can have, with their Edm names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttrType {
    String,
    Int,
    Bigint,
    Decimal,
    Double,
    Money,
    Boolean,
    Datetime,
    Date,
    Guid,
}

impl AttrType {
    pub fn edm(self) -> &'static str {
        match self {
            AttrType::String => "Edm.String",
            AttrType::Int => "Edm.Int32",
            AttrType::Bigint => "Edm.Int64",
            AttrType::Decimal | AttrType::Money => "Edm.Decimal",
            AttrType::Double => "Edm.Double",
            AttrType::Boolean => "Edm.Boolean",
            AttrType::Datetime => "Edm.DateTimeOffset",
            AttrType::Date => "Edm.Date",
            AttrType::Guid => "Edm.Guid",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attribute {
    #[serde(rename = "type")]
    pub kind: AttrType,
    pub max_length: Option<usize>,
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitySet {
    /// The entity's logical name: "account" for the set "accounts".
    pub entity: String,
    /// The primary key attribute (a GUID): "accountid".
    pub key: String,
    #[serde(default)]
    pub alternate_keys: Vec<Vec<String>>,
    #[serde(default)]
    pub attributes: BTreeMap<String, Attribute>,
    /// Navigation property → the entity set it points at.
    #[serde(default)]
    pub lookups: BTreeMap<String, String>,
    /// An elastic table: a bulk message with `Prefer: odata.continue-on-error` writes the targets it
    /// can and lists the others (a standard table's message is all or nothing).
    #[serde(default)]
    pub elastic: bool,
    /// Whether the set supports CreateMultiple, UpdateMultiple and UpsertMultiple.
    #[serde(default = "yes")]
    pub bulk_messages: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub sets: BTreeMap<String, EntitySet>,
}

impl Model {
    pub fn from_toml(text: &str) -> Result<Model, String> {
        let model: Model = toml::from_str(text).map_err(|e| e.to_string())?;
        for (name, set) in &model.sets {
            for key in set.alternate_keys.iter().flatten() {
                if !set.attributes.contains_key(key) {
                    return Err(format!(
                        "entity set {name}: alternate key column \"{key}\" is not an attribute"
                    ));
                }
            }
            for (nav, target) in &set.lookups {
                if !model.sets.contains_key(target) {
                    return Err(format!(
                        "entity set {name}: lookup {nav} points at unknown set \"{target}\""
                    ));
                }
            }
        }
        Ok(model)
    }

    /// `accounts` (alternate key accountnumber) and `contacts` (alternate key emailaddress1, lookup
    /// parentcustomerid to accounts): enough to rehearse a migration with no file.
    pub fn builtin() -> Model {
        Model::from_toml(BUILTIN).expect("the built-in model is valid")
    }

    pub fn set(&self, name: &str) -> Option<&EntitySet> {
        self.sets.get(name)
    }
}

const BUILTIN: &str = r#"
[sets.accounts]
entity = "account"
key = "accountid"
alternate_keys = [["accountnumber"]]
[sets.accounts.attributes]
name = { type = "string", max_length = 160, required = true }
accountnumber = { type = "string", max_length = 20 }
telephone1 = { type = "string", max_length = 50 }
emailaddress1 = { type = "string", max_length = 100 }
address1_city = { type = "string", max_length = 80 }
address1_country = { type = "string", max_length = 80 }
revenue = { type = "money" }
numberofemployees = { type = "int" }
creditonhold = { type = "boolean" }
description = { type = "string", max_length = 2000 }
createdon = { type = "datetime" }

[sets.contacts]
entity = "contact"
key = "contactid"
alternate_keys = [["emailaddress1"]]
[sets.contacts.attributes]
firstname = { type = "string", max_length = 50 }
lastname = { type = "string", max_length = 50, required = true }
emailaddress1 = { type = "string", max_length = 100 }
jobtitle = { type = "string", max_length = 100 }
birthdate = { type = "date" }
[sets.contacts.lookups]
parentcustomerid = "accounts"
"#;
