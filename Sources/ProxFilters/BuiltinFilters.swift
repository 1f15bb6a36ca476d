import ProxCore

/// The built-in filters' registration. Adding a built-in filter: a folder
/// `Sources/ProxFilters/<Name>/` with its config, factory and stage, and one line here.
/// (A custom filter lives in `filters/<name>/` and is registered in `Sources/ProxMain/CustomFilters.swift`.)
public enum BuiltinFilters {
    public static let descriptors: [FilterDescriptor] = [
        FilterDescriptor(RequestIDFactory.self),
        FilterDescriptor(HeadersFactory.self),
        FilterDescriptor(IPAccessFactory.self),
        FilterDescriptor(BodyLimitFactory.self),
        FilterDescriptor(ExtFilterFactory.self),
    ]

    /// A registry holding the built-ins only (what `ConfigCompiler` uses when given no registry).
    public static let registry: FilterRegistry = FilterRegistry().adding(descriptors, origin: .builtin)
}
