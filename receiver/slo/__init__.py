"""Service-level objectives: Keptn's slo.yaml / sli.yaml, scored the way Keptn's lighthouse did."""
