import ProxCore
