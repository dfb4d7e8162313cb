// Keeps the apps library non-empty before its first shared file lands.
