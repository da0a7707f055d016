"""The data layer: the contract's schemas, validated loading of cohort sources, the Cohort and
synthetic cohorts."""
