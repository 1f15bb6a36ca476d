import ProxCore

/// The built-in filters. Adding a filter: a folder `Sources/ProxFilters/<Name>/` with its
/// config, factory and stage, and one line here.
public enum BuiltinFilters {
    public static let all: [FilterDescriptor] = [
        FilterDescriptor(RequestIDFactory.self),
        FilterDescriptor(HeadersFactory.self),
        FilterDescriptor(IPAccessFactory.self),
        FilterDescriptor(BodyLimitFactory.self),
    ]
}
