//! Per-session command counters for the `disconnect from …` log line
//! (`ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5`, as Postfix logs them).

/// Counts of accepted and attempted commands, in first-seen order.
#[derive(Debug, Default)]
pub struct Counters {
    items: Vec<(&'static str, u32, u32)>,
}

impl Counters {
    /// Records one command and whether it succeeded.
    pub fn count(&mut self, name: &'static str, ok: bool) {
        match self.items.iter_mut().find(|(n, _, _)| *n == name) {
            Some(e) => {
                e.2 += 1;
                e.1 += ok as u32;
            }
            None => self.items.push((name, ok as u32, 1)),
        }
    }

    /// The summary text.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .items
            .iter()
            .map(|(n, ok, all)| {
                if ok == all {
                    format!("{n}={ok}")
                } else {
                    format!("{n}={ok}/{all}")
                }
            })
            .collect();
        let ok: u32 = self.items.iter().map(|e| e.1).sum();
        let all: u32 = self.items.iter().map(|e| e.2).sum();
        parts.push(if ok == all {
            format!("commands={ok}")
        } else {
            format!("commands={ok}/{all}")
        });
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_like_postfix() {
        let mut c = Counters::default();
        c.count("ehlo", true);
        c.count("rcpt", true);
        c.count("rcpt", false);
        assert_eq!(c.summary(), "ehlo=1 rcpt=1/2 commands=2/3");
    }
}
