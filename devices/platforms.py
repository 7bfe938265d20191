"""Which Apple platform a device runs, from what it says about its hardware.

The catalog's platform names: iOS (iPhone, iPad, iPod), macOS, tvOS, visionOS, watchOS.
"""

# Prefixes of ProductName (e.g. "iPhone15,2", "MacBookPro18,1") and ModelName ("iPad").
_PREFIXES = (
    ("iPhone", "iOS"),
    ("iPad", "iOS"),
    ("iPod", "iOS"),
    ("AppleTV", "tvOS"),
    ("Apple TV", "tvOS"),
    ("Watch", "watchOS"),
    ("Apple Watch", "watchOS"),
    ("RealityDevice", "visionOS"),
    ("Apple Vision", "visionOS"),
    ("Mac", "macOS"),
    ("iMac", "macOS"),
    ("VirtualMac", "macOS"),
)


def platform_for(*names: str) -> str:
    """The platform named by the first recognisable ProductName / ModelName, or ''."""
    for name in names:
        for prefix, platform in _PREFIXES:
            if name and name.startswith(prefix):
                return platform
    return ""
