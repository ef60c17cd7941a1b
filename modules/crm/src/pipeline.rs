//! The sales pipeline: leads, opportunities moving through stages, and activities
//! (calls, meetings, notes) on any CRM record.
//!
//! Opportunity stages: `qualification`, `proposal`, `negotiation`, `review` (open, in any
//! order), `won` (final; needs nothing more, probability 100) and `lost` (needs a
//! reason, probability 0; reopened by moving it back to an open stage, which clears the
//! reason). Converting a lead creates (or links) its contact and company and an
//! opportunity in one request; converting it again answers with what the first
//! conversion made.

use eerp_sdk::{
    Checks, Ctx, Error, FilterOp, ListSpec, LockMode, Module, Reply, Request, Resource, Row, Table,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::companies::COMPANIES;
use crate::contacts::CONTACTS;
use crate::schema::{ACTIVITY_KINDS, ACTIVITY_TARGETS, LEAD_STATES, STAGES};

/// A lead: someone who might buy, not yet qualified.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Lead {
    /// The person's name.
    pub name: String,
    /// Their company, as they gave it.
    pub company_name: Option<String>,
    /// Email, stored lower-case.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Where the lead came from (`web`, `fair`).
    pub source: Option<String>,
    /// `new`, `qualified`, `disqualified`; `converted` is set by converting.
    pub status: Option<String>,
    /// Free notes.
    pub notes: Option<String>,
    /// The contact its conversion made or linked.
    #[schemars(extend("format" = "uuid"))]
    pub contact_id: Option<String>,
    /// The opportunity its conversion made.
    #[schemars(extend("format" = "uuid"))]
    pub opportunity_id: Option<String>,
}

/// An opportunity: a deal in the pipeline.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Opportunity {
    /// What the deal is.
    pub name: String,
    /// The customer company.
    #[schemars(extend("format" = "uuid"))]
    pub company_id: Option<String>,
    /// The contact person.
    #[schemars(extend("format" = "uuid"))]
    pub contact_id: Option<String>,
    /// The lead it came from.
    #[schemars(extend("format" = "uuid"))]
    pub lead_id: Option<String>,
    /// Pipeline stage; default `qualification`.
    pub stage: Option<String>,
    /// Expected revenue, a decimal string with at most 2 decimals.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    pub amount: Option<String>,
    /// Chance of winning, 0..=100.
    pub probability: Option<i64>,
    /// Expected closing date.
    #[schemars(extend("format" = "date"))]
    pub expected_close: Option<String>,
    /// Why it was lost (required for `lost`).
    pub lost_reason: Option<String>,
}

/// An activity on a company, contact, lead or opportunity.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct Activity {
    /// `call`, `meeting` or `note`.
    pub kind: String,
    /// One line.
    pub subject: String,
    /// Free notes.
    pub notes: Option<String>,
    /// `company`, `contact`, `lead` or `opportunity`.
    pub on_type: String,
    /// The record's id.
    #[schemars(extend("format" = "uuid"))]
    pub on_id: String,
    /// When it is due.
    #[schemars(extend("format" = "date"))]
    pub due_on: Option<String>,
    /// Whether it is done.
    pub done: Option<bool>,
}

/// The leads table.
pub const LEADS: Table<Row<Lead>> = Table::new("leads");
/// The opportunities table.
pub const OPPORTUNITIES: Table<Row<Opportunity>> = Table::new("opportunities");
/// The activities table.
pub const ACTIVITIES: Table<Row<Activity>> = Table::new("activities");

/// Leads as a resource.
#[derive(Debug)]
pub struct Leads;
/// Opportunities as a resource.
#[derive(Debug)]
pub struct Opportunities;
/// Activities as a resource.
#[derive(Debug)]
pub struct Activities;

fn transition(detail: String) -> Error {
    Error::conflict(detail).with_code("invalid_transition")
}

impl Resource for Leads {
    type Record = Lead;
    const TABLE: Table<Row<Lead>> = LEADS;
    const NAME: &'static str = "lead";

    fn list_spec() -> ListSpec {
        ListSpec::new("leads")
            .filter_one_of("status", &LEAD_STATES)
            .filter("source")
            .filter_by("q", "name", FilterOp::Contains)
            .sortable(&["name"])
    }

    fn check(_ctx: &mut Ctx, mut lead: Lead, current: Option<&Row<Lead>>) -> Result<Lead, Error> {
        if current.is_some_and(|c| c.record.status.as_deref() == Some("converted")) {
            return Err(transition(
                "a converted lead no longer changes; work on its opportunity".into(),
            ));
        }
        lead.name = lead.name.trim().to_string();
        lead.email = lead.email.map(|e| e.trim().to_ascii_lowercase());
        // A blank company name is no company: conversion would create one without a name.
        lead.company_name = lead
            .company_name
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty());
        let mut checks = Checks::new();
        checks
            .text("name", &lead.name, 1, 200)
            .max_len("company_name", lead.company_name.as_deref(), 200)
            .email("email", lead.email.as_deref())
            .max_len("phone", lead.phone.as_deref(), 64)
            .max_len("source", lead.source.as_deref(), 64)
            .max_len("notes", lead.notes.as_deref(), 4000)
            .one_of("status", lead.status.as_deref(), &LEAD_STATES[..3]);
        let was = current.map(|c| (c.record.contact_id.clone(), c.record.opportunity_id.clone()));
        if was.unwrap_or_default() != (lead.contact_id.clone(), lead.opportunity_id.clone()) {
            checks.problem("contact_id", "is set by converting the lead");
        }
        checks.finish("lead", "invalid_lead")?;
        Ok(lead)
    }
}

/// Checks an opportunity against its stage rules; `from` is the stored stage.
///
/// # Errors
/// A 422 naming each invalid field, or a 409 for a move the pipeline does not allow.
pub fn check_opportunity(mut o: Opportunity, from: Option<&str>) -> Result<Opportunity, Error> {
    o.name = o.name.trim().to_string();
    let stage = o.stage.clone().unwrap_or_else(|| "qualification".into());
    match (from, stage.as_str()) {
        (Some("won"), to) if to != "won" => {
            return Err(transition(format!(
                "a won opportunity is closed; it cannot move to {to}"
            )));
        }
        (Some("lost"), "won") => {
            return Err(transition(
                "a lost opportunity is reopened to an open stage before it is won".into(),
            ));
        }
        _ => {}
    }
    if from == Some("lost") && stage != "lost" {
        o.lost_reason = None;
    }
    match stage.as_str() {
        "won" => o.probability = Some(100),
        "lost" => o.probability = Some(0),
        _ => {}
    }
    let mut checks = Checks::new();
    checks
        .text("name", &o.name, 1, 200)
        .one_of("stage", Some(stage.as_str()), &STAGES)
        .money("amount", o.amount.as_deref(), 12, 2)
        .date("expected_close", o.expected_close.as_deref())
        .max_len("lost_reason", o.lost_reason.as_deref(), 500);
    if o.probability.is_some_and(|p| !(0..=100).contains(&p)) {
        checks.problem("probability", "must be 0 to 100");
    }
    let reason = o
        .lost_reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    match (stage.as_str(), reason) {
        ("lost", None) => {
            checks.problem(
                "lost_reason",
                "a lost opportunity needs the reason it was lost",
            );
        }
        (s, Some(_)) if s != "lost" => {
            checks.problem("lost_reason", "only a lost opportunity has a lost reason");
        }
        _ => {}
    }
    checks.finish("opportunity", "invalid_opportunity")?;
    o.stage = Some(stage);
    Ok(o)
}

impl Resource for Opportunities {
    type Record = Opportunity;
    const TABLE: Table<Row<Opportunity>> = OPPORTUNITIES;
    const NAME: &'static str = "opportunity";

    fn list_spec() -> ListSpec {
        ListSpec::new("opportunities")
            .filter_one_of("stage", &STAGES)
            .filter_id("company_id")
            .filter_id("contact_id")
            .sortable(&["name", "amount", "expected_close"])
    }

    fn check(
        ctx: &mut Ctx,
        o: Opportunity,
        current: Option<&Row<Opportunity>>,
    ) -> Result<Opportunity, Error> {
        if o.lead_id != current.and_then(|c| c.record.lead_id.clone()) {
            return Err(Error::unprocessable("lead_id is set by converting a lead")
                .with_code("invalid_opportunity")
                .with_field("lead_id", "is set by converting a lead"));
        }
        let o = check_opportunity(o, current.and_then(|c| c.record.stage.as_deref()))?;
        if let Some(company) = &o.company_id {
            COMPANIES
                .get(ctx, company)
                .map_err(|_| Error::unknown_reference("company_id", "company"))?;
        }
        if let Some(contact) = &o.contact_id {
            CONTACTS
                .get(ctx, contact)
                .map_err(|_| Error::unknown_reference("contact_id", "contact"))?;
        }
        Ok(o)
    }
}

impl Resource for Activities {
    type Record = Activity;
    const TABLE: Table<Row<Activity>> = ACTIVITIES;
    const NAME: &'static str = "activity";

    fn list_spec() -> ListSpec {
        ListSpec::new("activities")
            .filter_one_of("kind", &ACTIVITY_KINDS)
            .filter_one_of("on_type", &ACTIVITY_TARGETS)
            .filter_id("on_id")
            .filter_bool("done")
            .sortable(&["due_on"])
    }

    fn check(
        ctx: &mut Ctx,
        mut a: Activity,
        _current: Option<&Row<Activity>>,
    ) -> Result<Activity, Error> {
        a.subject = a.subject.trim().to_string();
        let mut checks = Checks::new();
        checks
            .one_of("kind", Some(a.kind.as_str()), &ACTIVITY_KINDS)
            .text("subject", &a.subject, 1, 200)
            .max_len("notes", a.notes.as_deref(), 4000)
            .one_of("on_type", Some(a.on_type.as_str()), &ACTIVITY_TARGETS)
            .date("due_on", a.due_on.as_deref());
        checks.finish("activity", "invalid_activity")?;
        let found = match a.on_type.as_str() {
            "company" => COMPANIES.get(ctx, &a.on_id).is_ok(),
            "contact" => CONTACTS.get(ctx, &a.on_id).is_ok(),
            "lead" => LEADS.get(ctx, &a.on_id).is_ok(),
            _ => OPPORTUNITIES.get(ctx, &a.on_id).is_ok(),
        };
        if !found {
            return Err(Error::unknown_reference("on_id", &a.on_type));
        }
        Ok(a)
    }
}

/// The body of `POST /leads/{id}/convert` (all optional).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Conversion {
    /// An existing company to link instead of creating one from `company_name`.
    #[schemars(extend("format" = "uuid"))]
    company_id: Option<String>,
    /// The opportunity's name (default: the company's or the lead's name).
    opportunity_name: Option<String>,
    /// Its expected revenue.
    #[schemars(pattern(eerp_sdk::decimal::PATTERN))]
    amount: Option<String>,
}

/// Adds the pipeline routes to `module`.
pub fn routes(module: Module) -> Module {
    let module = eerp_sdk::resource_routes!(module, Leads, "/leads", "crm.leads");
    let module =
        eerp_sdk::resource_routes!(module, Opportunities, "/opportunities", "crm.opportunities");
    let module = eerp_sdk::resource_routes!(module, Activities, "/activities", "crm.activities");
    module
        .post("/leads/{id}/convert", "crm.leads.convert", convert)
        .summary("Convert a lead into a contact and an opportunity, once")
        .takes_optional::<Conversion>()
        .creates::<Converted>()
        .returns::<Converted>()
}

/// What converting a lead made (201), or had made (200, on a second call).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Converted {
    /// The lead, now `converted`.
    pub lead: Row<Lead>,
    /// Its contact.
    pub contact: Option<Row<crate::contacts::Contact>>,
    /// Its opportunity.
    pub opportunity: Option<Row<Opportunity>>,
}

fn convert(ctx: &mut Ctx, req: &Request) -> Result<Reply, Error> {
    let id = req.path("id")?;
    let body: Conversion = if req.raw_body() == "null" {
        Conversion::default()
    } else {
        req.json()?
    };
    let lead = LEADS
        .get_for_update(ctx, id)
        .map_err(|_| Error::not_found("no live lead with that id"))?;
    match lead.record.status.as_deref() {
        Some("converted") => return Ok(Reply::ok(converted(ctx, lead)?)),
        Some("disqualified") => {
            return Err(transition(
                "a disqualified lead is not converted; qualify it first".into(),
            ));
        }
        _ => {}
    }
    let company_id = match (&body.company_id, &lead.record.company_name) {
        (Some(company), _) => {
            COMPANIES
                .get(ctx, company)
                .map_err(|_| Error::unknown_reference("company_id", "company"))?;
            Some(company.clone())
        }
        (None, Some(name)) => {
            let company = COMPANIES.insert(ctx, &json!({"name": name, "is_customer": true}))?;
            Some(company.id)
        }
        (None, None) => None,
    };
    let contact = new_contact(ctx, &lead.record)?;
    let name = body
        .opportunity_name
        .or_else(|| lead.record.company_name.clone())
        .unwrap_or_else(|| lead.record.name.clone());
    let opportunity = check_opportunity(
        Opportunity {
            name,
            company_id,
            contact_id: Some(contact.id.clone()),
            lead_id: Some(lead.id.clone()),
            amount: body.amount,
            ..Opportunity::default()
        },
        None,
    )?;
    let opportunity = OPPORTUNITIES.insert(ctx, &opportunity)?;
    let lead = LEADS.update(
        ctx,
        id,
        &json!({"status": "converted", "contact_id": contact.id, "opportunity_id": opportunity.id}),
    )?;
    Ok(Reply::created(Converted {
        lead,
        contact: Some(contact),
        opportunity: Some(opportunity),
    }))
}

/// The lead's contact: the live contact with its email (inserted when there is none,
/// also when two conversions race for it), or a new one without an email.
fn new_contact(ctx: &mut Ctx, lead: &Lead) -> Result<Row<crate::contacts::Contact>, Error> {
    let contact = crate::contacts::normalize(crate::contacts::Contact {
        name: lead.name.clone(),
        email: lead.email.clone(),
        phone: lead.phone.clone(),
        company: lead.company_name.clone(),
        status: Some("prospect".into()),
        ..crate::contacts::Contact::default()
    })?;
    Ok(match &contact.email {
        Some(email) => {
            CONTACTS.lock_or_insert(ctx, &json!({"email": email}), &contact, LockMode::Share)?
        }
        None => CONTACTS.insert(ctx, &contact)?,
    })
}

/// What an earlier conversion of `lead` made.
fn converted(ctx: &mut Ctx, lead: Row<Lead>) -> Result<Converted, Error> {
    let contact = match &lead.record.contact_id {
        Some(id) => Some(CONTACTS.get_including_deleted(ctx, id)?),
        None => None,
    };
    let opportunity = match &lead.record.opportunity_id {
        Some(id) => Some(OPPORTUNITIES.get_including_deleted(ctx, id)?),
        None => None,
    };
    Ok(Converted {
        lead,
        contact,
        opportunity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(stage: &str) -> Opportunity {
        Opportunity {
            name: "Deal".into(),
            stage: Some(stage.into()),
            ..Opportunity::default()
        }
    }

    #[test]
    fn won_needs_nothing_more_and_is_final() {
        let won = check_opportunity(at("won"), Some("proposal")).unwrap();
        assert_eq!(won.probability, Some(100));
        let err = check_opportunity(at("proposal"), Some("won")).unwrap_err();
        assert_eq!(
            (err.status, err.body.code.as_deref()),
            (409, Some("invalid_transition"))
        );
    }

    #[test]
    fn lost_needs_a_reason_and_reopens_to_an_open_stage() {
        let err = check_opportunity(at("lost"), Some("proposal")).unwrap_err();
        assert_eq!(err.body.errors[0].field, "lost_reason");
        let mut lost = at("lost");
        lost.lost_reason = Some("price".into());
        assert_eq!(
            check_opportunity(lost.clone(), Some("proposal"))
                .unwrap()
                .probability,
            Some(0)
        );
        let mut reopened = lost;
        reopened.stage = Some("negotiation".into());
        assert_eq!(
            check_opportunity(reopened, Some("lost"))
                .unwrap()
                .lost_reason,
            None
        );
        assert_eq!(
            check_opportunity(at("won"), Some("lost"))
                .unwrap_err()
                .status,
            409
        );
        let mut stray = at("proposal");
        stray.lost_reason = Some("why".into());
        assert_eq!(check_opportunity(stray, None).unwrap_err().status, 422);
    }
}
