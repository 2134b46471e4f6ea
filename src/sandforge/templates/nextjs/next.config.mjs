/** @type {import('next').NextConfig} */
const nextConfig = {
  // The preview proxy serves the app on its own host name.
  poweredByHeader: false,
};

export default nextConfig;
