//! A source column's declared type, carried on its Arrow field where Arrow's own type says less
//! (`varchar(40)`, `char(3)`, `uuid`, `json` are all Utf8), so that a table `create = true` makes
//! has the column the source had, not `text`.

use std::collections::HashMap;

use arrow::datatypes::Field;

/// The field metadata key.
const KEY: &str = "ferry.declared_type";

/// The declared types Ferry carries from a source to the tables it creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    Varchar(u32),
    Char(u32),
    Uuid,
    Json,
    Jsonb,
}

impl Declared {
    /// `field` marked as declared `self` (JSON also as Arrow's `arrow.json` extension).
    pub fn mark(self, field: Field) -> Field {
        let mut metadata = HashMap::from([(KEY.to_string(), self.to_string())]);
        if matches!(self, Self::Json | Self::Jsonb) {
            metadata.insert("ARROW:extension:name".into(), "arrow.json".into());
        }
        field.with_metadata(metadata)
    }

    /// The declared type `field` carries, if any.
    pub fn of(field: &Field) -> Option<Self> {
        let text = field.metadata().get(KEY)?;
        let sized = |prefix: &str| {
            text.strip_prefix(prefix)?
                .strip_suffix(')')?
                .parse::<u32>()
                .ok()
        };
        match text.as_str() {
            "uuid" => Some(Self::Uuid),
            "json" => Some(Self::Json),
            "jsonb" => Some(Self::Jsonb),
            _ => sized("varchar(")
                .map(Self::Varchar)
                .or_else(|| sized("char(").map(Self::Char)),
        }
    }
}

impl std::fmt::Display for Declared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Varchar(n) => write!(f, "varchar({n})"),
            Self::Char(n) => write!(f, "char({n})"),
            Self::Uuid => f.write_str("uuid"),
            Self::Json => f.write_str("json"),
            Self::Jsonb => f.write_str("jsonb"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;

    #[test]
    fn a_declared_type_survives_the_field() {
        for declared in [
            Declared::Varchar(40),
            Declared::Char(3),
            Declared::Uuid,
            Declared::Json,
            Declared::Jsonb,
        ] {
            let field = declared.mark(Field::new("c", DataType::Utf8, true));
            assert_eq!(Declared::of(&field), Some(declared));
        }
        assert_eq!(Declared::of(&Field::new("c", DataType::Utf8, true)), None);
    }
}
