//! What `$metadata` says about an entity set: its primary key, alternate keys, properties with their
//! Edm types and lengths, and navigation properties (lookups). Enough for `ferry validate` to check a
//! target before a single write.

/// The entity type behind one entity set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntityInfo {
    pub name: String,
    pub key: String,
    pub alternate_keys: Vec<Vec<String>>,
    /// (name, Edm type, max length)
    pub properties: Vec<(String, String, Option<usize>)>,
    pub navigations: Vec<String>,
}

impl EntityInfo {
    pub fn property(&self, name: &str) -> Option<&(String, String, Option<usize>)> {
        self.properties.iter().find(|(n, _, _)| n == name)
    }

    /// Whether `key` is the primary key or one of the alternate keys.
    pub fn is_key(&self, key: &[String]) -> bool {
        let mut wanted: Vec<&str> = key.iter().map(String::as_str).collect();
        wanted.sort();
        if wanted == [self.key.as_str()] {
            return true;
        }
        self.alternate_keys.iter().any(|k| {
            let mut k: Vec<&str> = k.iter().map(String::as_str).collect();
            k.sort();
            k == wanted
        })
    }
}

fn attr<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let marker = format!("{name}=\"");
    let at = element.find(&marker)? + marker.len();
    Some(&element[at..at + element[at..].find('"')?])
}

/// The entity type of `set` in a CSDL document, if the set exists.
pub fn entity(xml: &str, set: &str) -> Option<EntityInfo> {
    let set_at = xml.find(&format!("<EntitySet Name=\"{set}\""))?;
    let set_element = &xml[set_at..set_at + xml[set_at..].find('>')?];
    let qualified = attr(set_element, "EntityType")?;
    let name = qualified.rsplit('.').next()?.to_string();
    let type_at = xml.find(&format!("<EntityType Name=\"{name}\""))?;
    let body = &xml[type_at
        ..type_at
            + xml[type_at..]
                .find("</EntityType>")
                .unwrap_or(xml.len() - type_at)];
    let mut info = EntityInfo {
        name,
        ..Default::default()
    };
    if let Some(k) = body.find("<PropertyRef") {
        info.key = attr(&body[k..], "Name").unwrap_or_default().to_string();
    }
    for piece in body.split('<').skip(1) {
        if piece.starts_with("Property ") {
            let name = attr(piece, "Name").unwrap_or_default().to_string();
            let edm = attr(piece, "Type").unwrap_or_default().to_string();
            let max = attr(piece, "MaxLength").and_then(|m| m.parse().ok());
            info.properties.push((name, edm, max));
        } else if piece.starts_with("NavigationProperty ") {
            info.navigations
                .push(attr(piece, "Name").unwrap_or_default().to_string());
        }
    }
    // Alternate keys: each <Record Type="...AlternateKey"> lists PropertyPath values.
    for record in body.split("AlternateKey\"").skip(1) {
        let end = record.find("AlternateKey\"").unwrap_or(record.len());
        let parts: Vec<String> = record[..end]
            .split("PropertyPath=\"")
            .skip(1)
            .filter_map(|p| p.split('"').next().map(String::from))
            .collect();
        if !parts.is_empty() {
            info.alternate_keys.push(parts);
        }
    }
    Some(info)
}

/// The entity sets the records of `set` point to: each single-valued navigation property's type
/// (`mscrm.account`), found as the entity type of a set of the container (`accounts`); itself left
/// out. Collections (one-to-many) are not lookups of `set`'s records.
pub fn lookup_sets(xml: &str, set: &str) -> Vec<String> {
    let Some(info) = entity(xml, set) else {
        return Vec::new();
    };
    let Some(type_at) = xml.find(&format!("<EntityType Name=\"{}\"", info.name)) else {
        return Vec::new();
    };
    let body = &xml[type_at
        ..type_at
            + xml[type_at..]
                .find("</EntityType>")
                .unwrap_or(xml.len() - type_at)];
    let sets: Vec<(String, String)> = xml
        .split("<EntitySet ")
        .skip(1)
        .filter_map(|s| {
            let name = attr(s, "Name")?;
            let entity = attr(s, "EntityType")?.rsplit('.').next()?;
            Some((name.to_string(), entity.to_string()))
        })
        .collect();
    let mut out: Vec<String> = Vec::new();
    for piece in body.split('<').skip(1) {
        if !piece.starts_with("NavigationProperty ") {
            continue;
        }
        let Some(target) = attr(piece, "Type") else {
            continue;
        };
        if target.starts_with("Collection(") {
            continue;
        }
        let target = target.rsplit('.').next().unwrap_or(target);
        for (name, entity) in &sets {
            if entity == target && name != set && !out.contains(name) {
                out.push(name.clone());
            }
        }
    }
    out
}

/// Whether an Arrow type can be written to an Edm type.
pub fn fits(arrow: &arrow::datatypes::DataType, edm: &str) -> bool {
    use arrow::datatypes::DataType as T;
    match edm {
        "Edm.String" | "Edm.Guid" => matches!(
            arrow,
            T::Utf8 | T::LargeUtf8 | T::Utf8View | T::Dictionary(_, _)
        ),
        "Edm.Int16" | "Edm.Int32" | "Edm.Int64" | "Edm.Byte" => arrow.is_integer(),
        "Edm.Decimal" | "Edm.Double" | "Edm.Single" => arrow.is_numeric(),
        "Edm.Boolean" => matches!(arrow, T::Boolean),
        "Edm.DateTimeOffset" => matches!(
            arrow,
            T::Timestamp(_, _) | T::Date32 | T::Date64 | T::Utf8 | T::Utf8View
        ),
        "Edm.Date" => matches!(arrow, T::Date32 | T::Date64 | T::Utf8 | T::Utf8View),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_the_sets_of_single_valued_navigations() {
        let xml = r#"<EntityType Name="contact"><Key><PropertyRef Name="contactid"/></Key>
<Property Name="contactid" Type="Edm.Guid"/>
<NavigationProperty Name="parentcustomerid" Type="mscrm.account"/>
<NavigationProperty Name="manager" Type="mscrm.contact"/>
<NavigationProperty Name="notes" Type="Collection(mscrm.annotation)"/>
</EntityType>
<EntityType Name="account"><Key><PropertyRef Name="accountid"/></Key></EntityType>
<EntityContainer Name="System">
<EntitySet Name="accounts" EntityType="Microsoft.Dynamics.CRM.account"/>
<EntitySet Name="contacts" EntityType="Microsoft.Dynamics.CRM.contact"/>
<EntitySet Name="annotations" EntityType="Microsoft.Dynamics.CRM.annotation"/>
</EntityContainer>"#;
        assert_eq!(lookup_sets(xml, "contacts"), ["accounts"]);
        assert!(lookup_sets(xml, "accounts").is_empty());
        assert!(lookup_sets(xml, "nothing").is_empty());
    }
}
