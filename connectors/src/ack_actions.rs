//! Which acknowledgement actions a source can carry out, checked where they are set: in a
//! source's options, and per message through `configure_ack`.

use weir_broadway::{AckAction, AckData, AckOptions};

/// The actions a source can carry out for `on_success` or `on_failure`, and the rule an
/// error states for any other.
pub(crate) struct Allowed {
    pub(crate) actions: &'static [AckAction],
    pub(crate) rule: &'static str,
}

impl Allowed {
    /// The refused value and the rule, when `action` is not allowed.
    fn refuse(&self, action: AckAction) -> Option<(String, String)> {
        (!self.actions.contains(&action)).then(|| (format!("{action:?}"), self.rule.to_owned()))
    }

    /// Checks an option's action.
    #[cfg(any(feature = "rabbitmq", feature = "sqs"))]
    pub(crate) fn check(&self, option: &'static str, action: AckAction) -> Result<(), crate::error::Error> {
        match self.refuse(action) {
            Some((value, rule)) => Err(crate::error::Error::InvalidOption { option, value, rule }),
            None => Ok(()),
        }
    }
}

/// An acknowledger's `configure`: checks the actions given, then sets them on the message
/// (nothing is set when one is refused).
pub(crate) fn configure(
    data: &mut AckData,
    options: AckOptions,
    on_success: &Allowed,
    on_failure: &Allowed,
) -> Result<(), weir_broadway::Error> {
    let given =
        [("on_success", options.on_success, on_success), ("on_failure", options.on_failure, on_failure)];
    for (option, action, allowed) in given {
        if let Some((value, rule)) = action.and_then(|action| allowed.refuse(action)) {
            return Err(weir_broadway::Error::InvalidOption { option, value, rule });
        }
    }
    data.on_success = options.on_success.or(data.on_success);
    data.on_failure = options.on_failure.or(data.on_failure);
    Ok(())
}
