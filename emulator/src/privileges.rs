//! Who the caller is and what it may bypass, as Dataverse answers it: `WhoAmI`, and
//! `systemusers(<id>)/Microsoft.Dynamics.CRM.RetrieveUserPrivilegeByPrivilegeName(PrivilegeName='...')`
//! for the two bypass privileges. A request that sends `MSCRM.BypassBusinessLogicExecution` or
//! `MSCRM.BypassCustomPluginExecution` without the privilege is refused with 403, and a bypass value
//! other than CustomSync/CustomAsync with 400.
//!
//! Every client holds both privileges unless `Config::without_bypass` names it (Dataverse gives them
//! to System Administrators; an application user gets them through a security role).

use std::hash::{Hash, Hasher};

use serde_json::json;
use uuid::Uuid;

use super::api::{Request, Response};
use super::store::{BAD_REQUEST, ODataError};

pub const BUSINESS_LOGIC: &str = "prvBypassCustomBusinessLogic";
pub const PLUGINS: &str = "prvBypassCustomPlugins";

/// Dataverse's code for a missing privilege.
pub const MISSING_PRIVILEGE: &str = "0x80040220";

/// The systemuser id of a client (stable for the client id).
pub fn user_id(client: &str) -> Uuid {
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        salt.hash(&mut h);
        client.hash(&mut h);
        h.finish()
    };
    Uuid::from_u64_pair(half(1), half(2))
}

/// Answers `WhoAmI` and the privilege function; `None` for any other request.
pub fn answer(client: &str, request: &Request, without: &[String]) -> Option<Response> {
    if request.method != "GET" {
        return None;
    }
    let path = super::url::percent_decode(&request.path);
    if path == "WhoAmI" || path == "WhoAmI()" {
        return Some(Response::json(
            200,
            &json!({
                "@odata.context": "$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
                "BusinessUnitId": user_id("business unit"),
                "UserId": user_id(client),
                "OrganizationId": user_id("organization"),
            }),
        ));
    }
    let (user, function) = path.split_once(")/Microsoft.Dynamics.CRM.")?;
    let user = user.strip_prefix("systemusers(")?;
    let name = function
        .strip_prefix("RetrieveUserPrivilegeByPrivilegeName(PrivilegeName='")?
        .strip_suffix("')")?;
    if user != user_id(client).to_string() {
        return Some(Response::error(&ODataError::new(
            403,
            MISSING_PRIVILEGE,
            "The emulator answers a user's privileges to that user only.",
        )));
    }
    let held = matches!(name, BUSINESS_LOGIC | PLUGINS) && !without.iter().any(|c| c == client);
    let privileges = if held {
        vec![json!({
            "Depth": "Global",
            "PrivilegeId": user_id(name),
            "BusinessUnitId": user_id("business unit"),
            "PrivilegeName": name,
        })]
    } else {
        Vec::new()
    };
    Some(Response::json(
        200,
        &json!({
            "@odata.context": "$metadata#Microsoft.Dynamics.CRM.RetrieveUserPrivilegeByPrivilegeNameResponse",
            "RolePrivileges": privileges,
        }),
    ))
}

/// Refuses a request whose bypass headers its client may not send, or that asks to bypass what
/// cannot be bypassed. Returns whether the request asked for a bypass.
pub fn check_bypass(
    client: &str,
    request: &Request,
    without: &[String],
) -> Result<bool, ODataError> {
    let mut asked = false;
    if let Some(what) = request.header("mscrm.bypassbusinesslogicexecution") {
        if what
            .split(',')
            .any(|p| !matches!(p.trim(), "CustomSync" | "CustomAsync"))
        {
            return Err(ODataError::new(
                400,
                BAD_REQUEST,
                format!(
                    "'{what}' is not a valid value of MSCRM.BypassBusinessLogicExecution: CustomSync, CustomAsync or both."
                ),
            ));
        }
        if without.iter().any(|c| c == client) {
            return Err(missing(client, BUSINESS_LOGIC));
        }
        asked = true;
    }
    if request
        .header("mscrm.bypasscustompluginexecution")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        if without.iter().any(|c| c == client) {
            return Err(missing(client, PLUGINS));
        }
        asked = true;
    }
    Ok(asked)
}

fn missing(client: &str, privilege: &str) -> ODataError {
    ODataError::new(
        403,
        MISSING_PRIVILEGE,
        format!(
            "Principal user (Id={}, type=8) is missing {privilege} privilege.",
            user_id(client)
        ),
    )
}
