"""Study time: days and weeks since enrolment, follow-up, and declarative time-to-event
derivations."""
