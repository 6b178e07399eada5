"""qlumeter's workbench: the ``qlumeter`` command, the HTML report, the sample tenant, local
folder metering and the local or remote runs of the stack. Not part of the Lambda layer."""
