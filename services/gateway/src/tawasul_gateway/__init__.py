"""The channels' HTTP gateway: JSON over HTTP for web and mobile, the establishment portal's
bulk filing, and (in development only) a stand-in sign-in."""
