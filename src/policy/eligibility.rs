//! Program eligibility: which incidents the Police and Peers program takes, and why.
//! Pure: no I/O; the rules come from the gateway config.

use crate::model::{Action, Category, Eligibility, Incident};
use serde::Deserialize;

/// `[program]` in gateway.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramRules {
    /// Categories the program takes.
    #[serde(default = "default_include")]
    pub include: Vec<Category>,
    /// Categories it never takes (checked before `include`).
    #[serde(default = "default_exclude")]
    pub exclude: Vec<Category>,
    /// Flags that exclude an incident whatever its category: `weapon`, `violence`.
    #[serde(default = "default_exclude_flags")]
    pub exclude_flags: Vec<Flag>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    Weapon,
    Violence,
}

fn default_include() -> Vec<Category> {
    vec![
        Category::Overdose,
        Category::SubstanceUse,
        Category::BehavioralHealth,
        Category::WelfareCheck,
        Category::DomesticNonviolent,
    ]
}
fn default_exclude() -> Vec<Category> {
    vec![Category::Violent]
}
fn default_exclude_flags() -> Vec<Flag> {
    vec![Flag::Weapon, Flag::Violence]
}

impl Default for ProgramRules {
    fn default() -> Self {
        ProgramRules {
            include: default_include(),
            exclude: default_exclude(),
            exclude_flags: default_exclude_flags(),
        }
    }
}

impl ProgramRules {
    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(c) = self.include.iter().find(|c| self.exclude.contains(c)) {
            return Err(format!("category `{c}` is both included and excluded"));
        }
        if self.include.contains(&Category::Unmapped) {
            return Err(
                "`unmapped` cannot be included: a code with no table entry is never eligible"
                    .into(),
            );
        }
        Ok(())
    }

    /// Decides, in this order: a delete, an excluding flag, an excluded category, an unmapped
    /// code, an included category; anything else is outside the program.
    pub fn decide(&self, inc: &Incident) -> Eligibility {
        let no = |rule: String| Eligibility {
            eligible: false,
            rule,
        };
        if inc.action == Action::Delete {
            return no("action:delete".into());
        }
        for flag in &self.exclude_flags {
            let set = match flag {
                Flag::Weapon => inc.flags.weapon,
                Flag::Violence => inc.flags.violence,
            };
            if set == Some(true) {
                return no(format!(
                    "flag:{}",
                    match flag {
                        Flag::Weapon => "weapon",
                        Flag::Violence => "violence",
                    }
                ));
            }
        }
        let c = inc.category;
        if self.exclude.contains(&c) {
            return no(rule(c, "excluded"));
        }
        if c == Category::Unmapped {
            return no("category:unmapped".into());
        }
        if self.include.contains(&c) {
            return Eligibility {
                eligible: true,
                rule: rule(c, "included"),
            };
        }
        no(rule(c, "not-in-program"))
    }

    pub fn apply(&self, inc: &mut Incident) {
        inc.eligibility = self.decide(inc);
    }
}

/// `category:<c>:<what>`, joined rather than formatted: it is built for every incident, and
/// `format!` cost about 0.5% of `normalize`.
fn rule(c: Category, what: &str) -> String {
    ["category:", c.as_str(), ":", what].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(c: Category) -> Incident {
        let mut i = Incident::new("t");
        i.category = c;
        i
    }

    #[test]
    fn rules_decide_in_order() {
        let r = ProgramRules::default();
        assert_eq!(
            r.decide(&inc(Category::Overdose)).rule,
            "category:overdose:included"
        );
        assert!(r.decide(&inc(Category::Overdose)).eligible);
        assert_eq!(
            r.decide(&inc(Category::Violent)).rule,
            "category:violent:excluded"
        );
        assert_eq!(r.decide(&inc(Category::Unmapped)).rule, "category:unmapped");
        assert_eq!(
            r.decide(&inc(Category::Other)).rule,
            "category:other:not-in-program"
        );
        let mut armed = inc(Category::BehavioralHealth);
        armed.flags.weapon = Some(true);
        assert_eq!(
            r.decide(&armed),
            Eligibility {
                eligible: false,
                rule: "flag:weapon".into()
            }
        );
        let mut del = inc(Category::Overdose);
        del.action = Action::Delete;
        assert_eq!(r.decide(&del).rule, "action:delete");
    }

    #[test]
    fn contradictory_rules_are_refused() {
        let r = ProgramRules {
            include: vec![Category::Violent],
            ..ProgramRules::default()
        };
        assert!(r.validate().is_err());
    }
}
