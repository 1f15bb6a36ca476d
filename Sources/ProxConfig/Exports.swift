// `import ProxConfig` gives the SDK types the config API speaks in (Diagnostic, Snapshot, ...).
@_exported import ProxCore
