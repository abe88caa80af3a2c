//! The OData connector's CSDL reader against the emulator's `$metadata`: what the connector learns of
//! an entity set (keys, alternate keys, lengths, lookups) is what the emulator serves.

use ferry_connectors::odata::csdl::entity;
use ferry_emulator::{api::metadata, model::Model};

#[test]
fn the_emulators_metadata_reads_back() {
    let xml = metadata(&Model::builtin());
    let accounts = entity(&xml, "accounts").unwrap();
    assert_eq!(accounts.name, "account");
    assert_eq!(accounts.key, "accountid");
    assert_eq!(
        accounts.alternate_keys,
        vec![vec!["accountnumber".to_string()]]
    );
    assert_eq!(
        accounts.property("name"),
        Some(&("name".into(), "Edm.String".into(), Some(160)))
    );
    assert!(accounts.is_key(&["accountnumber".into()]) && accounts.is_key(&["accountid".into()]));
    assert!(!accounts.is_key(&["name".into()]));
    let contacts = entity(&xml, "contacts").unwrap();
    assert_eq!(contacts.navigations, vec!["parentcustomerid".to_string()]);
    assert!(entity(&xml, "leads").is_none());
}
