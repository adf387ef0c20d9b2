"""remediation.yaml: which actions answer which problem, in both of Keptn's formats."""
