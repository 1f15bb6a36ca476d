/// Every filter a `prox` build knows: what the compiler decodes chain entries against, what the
/// schema generator, the docs and `prox filters` list. Built once at startup and then only read.
///
/// A name may be registered once. A second registration of the same name is refused, naming
/// both registrations, so two filters can never silently shadow each other:
///
/// ```swift
/// var filters = BuiltinFilters.registry
/// try filters.register(FilterDescriptor(TenantFactory.self))
/// ```
public struct FilterRegistry: Sendable {
    /// Where a filter comes from, as `prox filters` shows it.
    public enum Origin: String, Sendable {
        /// Shipped in `Sources/ProxFilters/`.
        case builtin = "built-in"
        /// A filter outside `Sources/ProxFilters/`: `filters/<name>/`, or a team's own package.
        case custom
    }

    /// One registered filter and where it was registered.
    public struct Entry: Sendable {
        public let descriptor: FilterDescriptor
        public let origin: Origin
        /// `Module/File.swift:line` of the `register` call.
        public let registeredAt: String
    }

    /// A name registered twice.
    public struct DuplicateName: Error, Sendable, CustomStringConvertible {
        public let name: String
        public let first: Entry
        public let second: Entry

        public var description: String {
            "filter '\(name)' is registered twice: first as \(first.descriptor.factoryTypeName) (\(first.origin.rawValue), at \(first.registeredAt)), "
                + "then as \(second.descriptor.factoryTypeName) (\(second.origin.rawValue), at \(second.registeredAt)); "
                + "filter names must be unique: rename one factory's `name`"
        }
    }

    public private(set) var entries: [Entry] = []
    private var indexByName: [String: Int] = [:]

    /// An empty registry.
    public init() {}

    /// Adds a filter; throws `DuplicateName` when its name is already taken.
    public mutating func register(_ descriptor: FilterDescriptor, origin: Origin = .custom,
                                  file: String = #fileID, line: Int = #line) throws(DuplicateName) {
        let entry = Entry(descriptor: descriptor, origin: origin, registeredAt: "\(file):\(line)")
        if let i = indexByName[descriptor.name] {
            throw DuplicateName(name: descriptor.name, first: entries[i], second: entry)
        }
        indexByName[descriptor.name] = entries.count
        entries.append(entry)
    }

    /// Adds filters in order; throws at the first name already taken.
    public mutating func register(_ descriptors: [FilterDescriptor], origin: Origin = .custom,
                                  file: String = #fileID, line: Int = #line) throws(DuplicateName) {
        for d in descriptors { try register(d, origin: origin, file: file, line: line) }
    }

    /// This registry with `descriptors` added; for startup code, where a duplicate is a
    /// programming error: it stops the process with the message naming both registrations.
    public func adding(_ descriptors: [FilterDescriptor], origin: Origin = .custom,
                       file: String = #fileID, line: Int = #line) -> FilterRegistry {
        var copy = self
        do {
            try copy.register(descriptors, origin: origin, file: file, line: line)
        } catch {
            fatalError("\(error)")
        }
        return copy
    }

    /// The filters in registration order.
    public var descriptors: [FilterDescriptor] { entries.map(\.descriptor) }
    public var names: [String] { entries.map(\.descriptor.name) }

    public subscript(name: String) -> Entry? {
        indexByName[name].map { entries[$0] }
    }
}
