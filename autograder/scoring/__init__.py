"""What graders use to judge, in the trusted harness: calibrated pass thresholds (`calibration`, written by the
`calibrate` command from the reference's own runs) and the audit that trained weights come from the submission's
own training (`training_audit`)."""
